"""Non-RL solvers, one module per problem; each imports its problem model from quant_envs."""
