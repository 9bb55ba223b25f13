//! Connections that a handler can cut, so a fault can drop a call without any HTTP response.
//!
//! [`SeverableListener`] wraps the TCP listener; each accepted stream shares a flag with the
//! [`ConnectionHandle`] that axum hands to the routes as connect info. Once the flag is set, every
//! read and write on the stream fails, so hyper abandons the connection before writing a single
//! byte of the response, and the client sees the connection close (a reset if it was still
//! sending), never a status line.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Lets a handler cut the connection its request came on.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionHandle {
    severed: Arc<AtomicBool>,
}

impl ConnectionHandle {
    pub(crate) fn sever(&self) {
        self.severed.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, SeverableListener>> for ConnectionHandle {
    fn connect_info(stream: IncomingStream<'_, SeverableListener>) -> ConnectionHandle {
        stream.remote_addr().clone()
    }
}

pub(crate) struct SeverableListener {
    inner: TcpListener,
}

impl SeverableListener {
    pub(crate) fn new(inner: TcpListener) -> SeverableListener {
        SeverableListener { inner }
    }
}

impl Listener for SeverableListener {
    type Io = SeverableStream;
    type Addr = ConnectionHandle;

    async fn accept(&mut self) -> (SeverableStream, ConnectionHandle) {
        loop {
            match self.inner.accept().await {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let severed = Arc::new(AtomicBool::new(false));
                    let handle = ConnectionHandle {
                        severed: Arc::clone(&severed),
                    };
                    return (
                        SeverableStream {
                            inner: stream,
                            severed,
                        },
                        handle,
                    );
                }
                // Too many open files and the like: wait a little, as axum's own listener does.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<ConnectionHandle> {
        self.inner.local_addr()?;
        Ok(ConnectionHandle {
            severed: Arc::new(AtomicBool::new(false)),
        })
    }
}

pub(crate) struct SeverableStream {
    inner: TcpStream,
    severed: Arc<AtomicBool>,
}

impl SeverableStream {
    fn cut_error(&self) -> Option<io::Error> {
        self.severed.load(Ordering::SeqCst).then(|| {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection cut by a simulated fault",
            )
        })
    }
}

impl AsyncRead for SeverableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.cut_error() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.inner).poll_read(context, buffer)
    }
}

impl AsyncWrite for SeverableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(error) = this.cut_error() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.inner).poll_write(context, bytes)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.cut_error() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.inner).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.severed.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_shutdown(context)
    }
}
