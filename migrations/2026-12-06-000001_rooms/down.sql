DROP TABLE room_performances;
DROP TABLE rooms;
