"""Loading models, tokenizers and adapters, and building the offline demo model."""
