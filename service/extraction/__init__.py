"""Reply extraction: what a person typed, without the quoted thread and the signature (pure)."""
