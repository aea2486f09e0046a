"""Work after commit: the outbox and its dispatcher, the scheduler, send pacing, webhook signatures at send time, Celery mode."""
