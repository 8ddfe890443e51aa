"""What happens to a message after it leaves: provider statuses, our own open and click
tracking, and the conversions credited to the messages that reached a customer."""
