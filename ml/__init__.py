"""learnchain machine learning: tasks, learner, vote rule, weights codec."""
