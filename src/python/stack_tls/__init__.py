"""TLS material shared by the services: a self-signed pair when none is provided."""
