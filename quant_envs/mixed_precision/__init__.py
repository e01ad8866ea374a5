"""Hardware-aware mixed-precision quantization: tasks, torch fake-quantization, layer shapes, env."""
