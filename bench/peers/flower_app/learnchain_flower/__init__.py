"""learnchain's large-model bench task as a Flower app (``bench/peers/flower_deployment.py``)."""
