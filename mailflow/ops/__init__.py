"""What a council's IT team runs beside the loop: connection checks, backups, logging."""
