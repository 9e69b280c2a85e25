"""Domain operations. No GraphQL or HTTP here: the API layers translate and call these."""
