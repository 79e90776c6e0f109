"""What a person sees: the lines and live progress of `sync` and `uninstall`."""
