# Thin wrapper over ./dev (which needs only bash on a fresh Debian 12).
.PHONY: demo test sanitize bench build deps
demo test sanitize bench build deps:
	./dev $@
