"""tierhouse: grade a retailer's customers into service tiers with an auditable history."""

__version__ = "0.1.0"
