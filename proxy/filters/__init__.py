"""Model filters: rewrites on the way to a provider and back (the provider's `compat` block)."""
