"""The three stacks: each only wires constructs together, grants access and names its outputs."""
