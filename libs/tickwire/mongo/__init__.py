"""MongoDB access through PyMongo's AsyncMongoClient (Motor is deprecated)."""
