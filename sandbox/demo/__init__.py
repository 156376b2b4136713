"""The embedded demo workspace: synthetic data, its policies and the walk that sets them up."""
