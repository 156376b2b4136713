"""The regulation's objects: datasets and their policies, publication and de-identification, applications,
approvals, suspensions, objections, deadlines, alerts and the budget ledger. Imports store only."""
