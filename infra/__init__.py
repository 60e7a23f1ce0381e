"""The AWS CDK app of image-etl: `app.py` (entry), `stacks/`, `components/`, bundling, checks."""
