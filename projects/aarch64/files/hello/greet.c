const char *greeting(void) { return "hello from aarch64"; }
