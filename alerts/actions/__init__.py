"""What happens to a run because of an alert or a person, besides notifications (rule ``actions``)."""
