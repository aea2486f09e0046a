"""The dialogue runtime: the engine that handles one inbound message, and the Turn handlers see."""
