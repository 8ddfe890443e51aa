"""Policies that span journeys and broadcasts: what any marketing send must respect."""
