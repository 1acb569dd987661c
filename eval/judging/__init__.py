"""What `judge` needs besides the verb itself: versioned judge prompts, verdict parsers, a cached API client."""
