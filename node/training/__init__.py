"""The learner on this validator's private data, off the event loop: the learning worker (a
thread), the learner in a supervised process of its own, and training as a torchrun job.

May import: libs, home, store, weights.
"""
