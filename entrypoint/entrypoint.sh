#!/bin/sh
# The container's entry: the GitHub Action is one command of the quantgate CLI.
exec /opt/quantgate/bin/quantgate action "$@"
