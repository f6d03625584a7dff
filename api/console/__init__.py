"""The web console: server-rendered pages for the back office, banks and borrowers."""
