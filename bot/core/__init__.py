"""What every layer may use: settings, i18n, phone numbers, neutral message types, the registry, the services container, metrics, logs, the audit log."""
