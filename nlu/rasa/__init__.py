"""Tools to train and serve the Rasa server of the intent layer; Rasa itself is never imported."""
