import { render } from 'preact';
render(<h1>Micro</h1>, document.getElementById('app') as HTMLElement);
