"""The semantic layer: what a tenant's analytics queries may read, and how they are vetted."""
