"""``make reliability``: the fault matrix over the real core (see ``matrix``); ``test_matrix`` runs it quickly."""
