"""Images, video and audio: media plugins, collators and the offline vision demo model (imports torch lazily)."""
