-- The frame rate of a processed clip, so the console steps one frame at a
-- time.
ALTER TABLE clips ADD COLUMN frame_rate REAL;
