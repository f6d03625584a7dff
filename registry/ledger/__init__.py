"""The ledger: parties, accounts, credit types, issuance batches and holdings as serial blocks."""
