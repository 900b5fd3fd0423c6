"""Authentication primitives: password hashing, signed tokens, principals, masking."""
