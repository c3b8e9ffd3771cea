"""Foundation: typed settings (with their help) and the error types every layer raises."""
