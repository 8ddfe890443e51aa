"""Who may call us: API keys and their roles (storage and lookup; no HTTP here)."""
