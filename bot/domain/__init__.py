"""Domain rules over a SQLAlchemy Session, no Flask: orders, relay, handoffs, ratings, reroutes, notifications and their policies, recipients, analytics, privacy, outgoing events."""
