-- Forget the whole line: every place, the settings, the draw, the log. The next entry starts a
-- new epoch. The liveness bitmaps and per-client counters expire by themselves.
redis.call('DEL', epoch_key, seq_key, head_key, active, left, log, admission, users,
  settings_key, draw_key, order_key, inverse_key, seq_users)
return 1
