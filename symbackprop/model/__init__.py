"""The model: activation and cost registries, layer stacks, and the program of named definitions they build."""
