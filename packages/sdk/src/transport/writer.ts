import type { Socket } from 'node:net';

/**
 * Writes frames to a socket, coalescing every frame written in one tick into one
 * system call (cork now, uncork on the next tick). Under load this is what turns a
 * hundred small responses into one write.
 */
export class FrameWriter {
  private corked = false;
  private readonly uncork = () => {
    this.corked = false;
    this.socket.uncork();
  };

  constructor(private readonly socket: Socket) {}

  write(buf: Buffer): void {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    this.socket.write(buf);
  }
}
