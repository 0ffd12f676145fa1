"""npigym environments."""
