"""The units of the system as CDK constructs; stacks wire them together and grant access."""
