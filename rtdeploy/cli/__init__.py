"""The command line: thin click commands over :mod:`rtdeploy.api`."""
