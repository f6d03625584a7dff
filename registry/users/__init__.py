"""People who sign in to the web console: their accounts, passwords and sessions."""
