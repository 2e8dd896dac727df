"""A GraphQL gateway over the WorkfloPlus Jobs REST API."""

__version__ = "0.1.0"
