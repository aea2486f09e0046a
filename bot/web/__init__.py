"""Web adapters, Flask only: inbound webhooks, the carrier, driver and helpdesk APIs, the tracking page, the console, the simulator page, the NLU endpoint and the production server."""
