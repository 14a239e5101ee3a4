"""Core commands: validate, ptq-dynamic, ptq-static, gate."""
