"""ccxt adapter: endpoints, error mapping, rate limiting and client order ids."""
