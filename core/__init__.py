"""What the API and the worker share: settings, database, store functions, errors."""
