"""Access control (SPEC section 4): who may see what (roles.py, as SQL), who may
write what (rules.py), and who is calling the server (http.py)."""
