"""Reinforcement-learning agents (stable-baselines3, sb3-contrib) with per-environment hyperparameters."""
