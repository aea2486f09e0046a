"""Media people send (driver proof photos, customers' photos of damage, PDF documents).

The webhook stores only a `media_files` row and an outbox row (`kind="media"`); after commit the dispatcher
downloads the file once with the provider's credentials (Twilio: HTTP basic auth; Telegram: getFile) into the
operator's store (a local folder or S3), within size and type limits (the sender is told, in their language,
when a file is not kept). Everything else refers to the file as `media:<id>`; it leaves us only as a signed,
expiring link to our own route (bot/media/views.py), made when a message is sent or a page is shown.
"""

from bot.domain.media.links import REF_PREFIX, ref, ref_id
from bot.domain.media.service import MediaService, current

__all__ = ["REF_PREFIX", "MediaService", "current", "ref", "ref_id"]
