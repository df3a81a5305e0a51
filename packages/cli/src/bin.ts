import { main } from './main.js';

// `micro … | head -1` closes stdout early: that ends the command, it is not a failure
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const code = await main(process.argv.slice(2));
// Exit explicitly once the output is flushed: the connection pool and registry watches
// of a one-shot command would otherwise keep the process alive.
await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
await new Promise<void>((resolve) => process.stderr.write('', () => resolve()));
process.exit(code);
